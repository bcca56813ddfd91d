"""The flows a records application runs against S3 Object Lock, with boto3,
against a real wormboxd (run by tests/e2e/s3_clients.rs, which answers the
driver's questions): a bucket with Object Lock and default COMPLIANCE
retention, a put with lock headers, list-object-versions, a delete refused
while locked, retention extended and a shortening refused, the legal hold on
and off (by a second principal that may place holds), MFA Delete enabled with
a code, a permanent delete with a code, and a reused code refused.
Exits non-zero (an assertion) at the first deviation."""
import datetime
import hashlib
import io

import boto3
from botocore.client import Config
from botocore.exceptions import ClientError

import driver
from driver import step


def client(key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=driver.env("S3_ENDPOINT"),
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def refused(call, code, **kwargs):
    try:
        call(**kwargs)
    except ClientError as err:
        got = err.response["Error"]["Code"]
        assert got == code, "expected %s, got %s: %s" % (code, got, err.response["Error"].get("Message"))
        return err.response["Error"].get("Message", "")
    raise AssertionError("%s was not refused" % call.__name__)


s3 = client(driver.env("AWS_ACCESS_KEY_ID"), driver.env("AWS_SECRET_ACCESS_KEY"))
holder = client(driver.env("HOLDER_ACCESS_KEY_ID"), driver.env("HOLDER_SECRET_ACCESS_KEY"))
bucket = "records-boto3"

step("bucket with Object Lock and default COMPLIANCE retention")
s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
s3.put_object_lock_configuration(
    Bucket=bucket,
    ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 30}},
    },
)
conf = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
assert conf["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 30}, conf

step("put-object under the default retention, then with lock headers")
now = driver.now()
body1 = b"invoice 2026-0001\n" * 100
v1 = s3.put_object(Bucket=bucket, Key="invoices/0001.txt", Body=body1)["VersionId"]
head = s3.head_object(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1)
assert head["ObjectLockMode"] == "COMPLIANCE", head
assert head["ObjectLockRetainUntilDate"] >= now + datetime.timedelta(days=29), head
until = (now + datetime.timedelta(days=400)).replace(microsecond=0)
body2 = b"invoice 2026-0001, corrected\n" * 100
put2 = s3.put_object(
    Bucket=bucket,
    Key="invoices/0001.txt",
    Body=body2,
    ContentType="text/plain",
    Metadata={"department": "accounts"},
    ObjectLockMode="COMPLIANCE",
    ObjectLockRetainUntilDate=until,
)
v2 = put2["VersionId"]
assert put2["ETag"].strip('"') == hashlib.md5(body2).hexdigest(), put2
got = s3.get_object(Bucket=bucket, Key="invoices/0001.txt")
assert got["VersionId"] == v2 and got["Body"].read() == body2
assert got["Metadata"] == {"department": "accounts"}, got["Metadata"]
assert s3.get_object(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1)["Body"].read() == body1
ranged = s3.get_object(Bucket=bucket, Key="invoices/0001.txt", Range="bytes=0-6")
assert ranged["Body"].read() == b"invoice" and ranged["ContentRange"].startswith("bytes 0-6/"), ranged
retention = s3.get_object_retention(Bucket=bucket, Key="invoices/0001.txt", VersionId=v2)["Retention"]
assert retention["Mode"] == "COMPLIANCE" and retention["RetainUntilDate"] == until, retention
s3.upload_fileobj(io.BytesIO(b"x" * 70000), bucket, "invoices/0002.bin")

step("list-object-versions")
listed = s3.list_object_versions(Bucket=bucket, Prefix="invoices/")
ids = [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]]
assert ("invoices/0001.txt", v2, True) in ids and ("invoices/0001.txt", v1, False) in ids, ids
assert len(ids) == 3, ids
page = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
assert page["IsTruncated"] and len(page["Versions"]) == 1, page
rest = s3.list_object_versions(
    Bucket=bucket, KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"]
)
assert len(rest["Versions"]) == 2, rest
assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["invoices/0001.txt", "invoices/0002.bin"]

step("delete-object of a locked version is refused; a delete marker is not")
message = refused(s3.delete_object, "AccessDenied", Bucket=bucket, Key="invoices/0001.txt", VersionId=v1)
print("refused: %s" % message)
marker = s3.delete_object(Bucket=bucket, Key="invoices/0001.txt")
assert marker["DeleteMarker"] is True, marker
refused(s3.get_object, "NoSuchKey", Bucket=bucket, Key="invoices/0001.txt")
assert s3.get_object(Bucket=bucket, Key="invoices/0001.txt", VersionId=v2)["Body"].read() == body2

step("retention extended; shortening refused")
longer = until + datetime.timedelta(days=365)
s3.put_object_retention(
    Bucket=bucket, Key="invoices/0001.txt", VersionId=v2,
    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer},
)
got = s3.get_object_retention(Bucket=bucket, Key="invoices/0001.txt", VersionId=v2)["Retention"]
assert got["RetainUntilDate"] == longer, got
message = refused(
    s3.put_object_retention, "AccessDenied", Bucket=bucket, Key="invoices/0001.txt", VersionId=v2,
    Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
)
print("refused: %s" % message)
got = s3.get_object_retention(Bucket=bucket, Key="invoices/0001.txt", VersionId=v2)["Retention"]
assert got["RetainUntilDate"] == longer, got

step("legal hold on and off (a principal that may place holds)")
holder.put_object_legal_hold(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1, LegalHold={"Status": "ON"})
hold = s3.get_object_legal_hold(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1)["LegalHold"]
assert hold["Status"] == "ON", hold
head = s3.head_object(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1)
assert head.get("ObjectLockLegalHoldStatus") == "ON", head
holder.put_object_legal_hold(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1, LegalHold={"Status": "OFF"})
hold = s3.get_object_legal_hold(Bucket=bucket, Key="invoices/0001.txt", VersionId=v1)["LegalHold"]
assert hold["Status"] == "OFF", hold

step("MFA Delete enabled with a code; delete without one refused")
serial_code = driver.mfa()
s3.put_bucket_versioning(
    Bucket=bucket, MFA=serial_code, VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"}
)
versioning = s3.get_bucket_versioning(Bucket=bucket)
assert versioning["Status"] == "Enabled" and versioning["MFADelete"] == "Enabled", versioning
marker_id = marker["VersionId"]
refused(s3.delete_object, "AccessDenied", Bucket=bucket, Key="invoices/0001.txt", VersionId=marker_id)

step("permanent delete with a code (the delete marker: no retention on it)")
code = driver.mfa()
gone = s3.delete_object(Bucket=bucket, Key="invoices/0001.txt", VersionId=marker_id, MFA=code)
assert gone["VersionId"] == marker_id and gone.get("DeleteMarker") is True, gone
assert s3.get_object(Bucket=bucket, Key="invoices/0001.txt")["VersionId"] == v2

step("reuse of a code refused")
extra = s3.put_object(Bucket=bucket, Key="invoices/0003.txt", Body=b"third")
marker3 = s3.delete_object(Bucket=bucket, Key="invoices/0003.txt")["VersionId"]
message = refused(s3.delete_object, "AccessDenied", Bucket=bucket, Key="invoices/0003.txt", VersionId=marker3, MFA=code)
print("refused: %s" % message)

step("permanent delete of a version whose retention ran out, with a code")
driver.advance(31 * 24 * 3600)
code = driver.mfa()
gone = s3.delete_object(Bucket=bucket, Key="invoices/0003.txt", VersionId=extra["VersionId"], MFA=code)
assert gone["VersionId"] == extra["VersionId"], gone
refused(s3.head_object, "404", Bucket=bucket, Key="invoices/0003.txt", VersionId=extra["VersionId"])
step("bucket answers: location, head, listing v1 with a delimiter")
assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") in (None, "", "us-east-1")
s3.head_bucket(Bucket=bucket)
assert any(b["Name"] == bucket for b in s3.list_buckets()["Buckets"])
v1_list = s3.list_objects(Bucket=bucket, Delimiter="/")
assert [p["Prefix"] for p in v1_list.get("CommonPrefixes", [])] == ["invoices/"], v1_list

step("conditional and delete-marker reads")
etag = s3.head_object(Bucket=bucket, Key="invoices/0001.txt")["ETag"]
refused(s3.get_object, "304", Bucket=bucket, Key="invoices/0001.txt", IfNoneMatch=etag)
refused(s3.get_object, "PreconditionFailed", Bucket=bucket, Key="invoices/0001.txt", IfMatch='"0123"')
marker4 = s3.delete_object(Bucket=bucket, Key="invoices/0002.bin")["VersionId"]
try:
    s3.get_object(Bucket=bucket, Key="invoices/0002.bin", VersionId=marker4)
    raise AssertionError("GET of a delete marker was answered")
except ClientError as err:
    assert err.response["Error"]["Code"] == "MethodNotAllowed", err.response
    assert err.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true", err.response

step("delete_objects: one code for the request, a locked version refused on its own")
# Written now: under the default retention (the clock has moved past the first ones').
locked = s3.put_object(Bucket=bucket, Key="invoices/0002.bin", Body=b"locked")["VersionId"]
answer = s3.delete_objects(
    Bucket=bucket,
    MFA=driver.mfa(),
    Delete={"Objects": [
        {"Key": "invoices/0002.bin", "VersionId": marker4},
        {"Key": "invoices/0002.bin", "VersionId": locked},
    ]},
)
assert [d["VersionId"] for d in answer.get("Deleted", [])] == [marker4], answer
assert [(e["VersionId"], e["Code"]) for e in answer.get("Errors", [])] == [(locked, "AccessDenied")], answer
print("boto3 flows: all passed", flush=True)
