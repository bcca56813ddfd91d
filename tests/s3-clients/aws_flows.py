"""The records application's core flows with the AWS CLI (`aws s3api ...`,
`--mfa "SERIAL CODE"`) and `aws s3 cp` of a file both ways, against a real
wormboxd (run by tests/e2e/s3_clients.rs, which answers the driver's
questions). Each step is one `aws` command line as an operator types it;
this script only runs them and checks their JSON and exit status.
Exits non-zero (an assertion) at the first deviation."""
import datetime
import filecmp
import json
import os
import subprocess

import driver
from driver import step

AWS = driver.env("WORMBOX_AWS")
ENDPOINT = driver.env("S3_ENDPOINT")


def aws(*args, holder=False):
    """Runs `aws ARGS --endpoint-url ENDPOINT`; returns `s3api`'s JSON (or
    None), other commands' text."""
    env = dict(os.environ)
    if holder:
        env["AWS_ACCESS_KEY_ID"] = driver.env("HOLDER_ACCESS_KEY_ID")
        env["AWS_SECRET_ACCESS_KEY"] = driver.env("HOLDER_SECRET_ACCESS_KEY")
    cmd = [AWS, *args, "--endpoint-url", ENDPOINT]
    print("$ aws %s" % " ".join(args), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError("aws %s failed (%d): %s" % (" ".join(args), done.returncode, done.stderr))
    if args[0] != "s3api":
        return done.stdout
    return json.loads(done.stdout) if done.stdout.strip() else None


def aws_refused(code, *args):
    cmd = [AWS, *args, "--endpoint-url", ENDPOINT]
    print("$ aws %s   (must be refused: %s)" % (" ".join(args), code), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode != 0, "aws %s was not refused: %s" % (" ".join(args), done.stdout)
    assert "(%s)" % code in done.stderr, "expected %s: %s" % (code, done.stderr)
    print("refused: %s" % done.stderr.strip(), flush=True)


def iso(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


bucket = "records-awscli"
key = "contracts/2026-17.pdf"

step("bucket with Object Lock and default COMPLIANCE retention")
aws("s3api", "create-bucket", "--bucket", bucket, "--object-lock-enabled-for-bucket")
aws(
    "s3api", "put-object-lock-configuration", "--bucket", bucket, "--object-lock-configuration",
    '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Days":30}}}',
)
conf = aws("s3api", "get-object-lock-configuration", "--bucket", bucket)["ObjectLockConfiguration"]
assert conf["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 30}, conf

step("put-object with lock headers")
with open("contract-v1.pdf", "wb") as f:
    f.write(os.urandom(200_000))
with open("contract-v2.pdf", "wb") as f:
    f.write(os.urandom(150_000))
now = driver.now()
until = now + datetime.timedelta(days=400)
v1 = aws("s3api", "put-object", "--bucket", bucket, "--key", key, "--body", "contract-v1.pdf")["VersionId"]
v2 = aws(
    "s3api", "put-object", "--bucket", bucket, "--key", key, "--body", "contract-v2.pdf",
    "--object-lock-mode", "COMPLIANCE", "--object-lock-retain-until-date", iso(until),
    "--metadata", "case=2026-17",
)["VersionId"]
head = aws("s3api", "head-object", "--bucket", bucket, "--key", key, "--version-id", v2)
assert head["ObjectLockMode"] == "COMPLIANCE" and head["Metadata"] == {"case": "2026-17"}, head
aws("s3api", "get-object", "--bucket", bucket, "--key", key, "--version-id", v1, "got-v1.pdf")
assert filecmp.cmp("got-v1.pdf", "contract-v1.pdf", shallow=False)

step("list-object-versions")
listed = aws("s3api", "list-object-versions", "--bucket", bucket)
ids = {(v["VersionId"], v["IsLatest"]) for v in listed["Versions"] if v["Key"] == key}
assert ids == {(v1, False), (v2, True)}, listed

step("delete-object of a locked version refused")
aws_refused("AccessDenied", "s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", v2)

step("retention extended; shortening refused")
longer = until + datetime.timedelta(days=365)
aws(
    "s3api", "put-object-retention", "--bucket", bucket, "--key", key, "--version-id", v2,
    "--retention", json.dumps({"Mode": "COMPLIANCE", "RetainUntilDate": iso(longer)}),
)
got = aws("s3api", "get-object-retention", "--bucket", bucket, "--key", key, "--version-id", v2)["Retention"]
assert got["RetainUntilDate"].startswith(longer.strftime("%Y-%m-%dT%H:%M:%S")), got
aws_refused(
    "AccessDenied", "s3api", "put-object-retention", "--bucket", bucket, "--key", key, "--version-id", v2,
    "--retention", json.dumps({"Mode": "COMPLIANCE", "RetainUntilDate": iso(until)}),
)

step("legal hold on and off (a principal that may place holds)")
aws("s3api", "put-object-legal-hold", "--bucket", bucket, "--key", key, "--version-id", v1,
    "--legal-hold", "Status=ON", holder=True)
hold = aws("s3api", "get-object-legal-hold", "--bucket", bucket, "--key", key, "--version-id", v1)
assert hold["LegalHold"]["Status"] == "ON", hold
aws("s3api", "put-object-legal-hold", "--bucket", bucket, "--key", key, "--version-id", v1,
    "--legal-hold", "Status=OFF", holder=True)
hold = aws("s3api", "get-object-legal-hold", "--bucket", bucket, "--key", key, "--version-id", v1)
assert hold["LegalHold"]["Status"] == "OFF", hold

step("MFA Delete enabled with --mfa")
aws("s3api", "put-bucket-versioning", "--bucket", bucket, "--mfa", driver.mfa(),
    "--versioning-configuration", "Status=Enabled,MFADelete=Enabled")
versioning = aws("s3api", "get-bucket-versioning", "--bucket", bucket)
assert versioning == {"Status": "Enabled", "MFADelete": "Enabled"}, versioning

step("permanent delete with --mfa; the same code again refused")
marker = aws("s3api", "delete-object", "--bucket", bucket, "--key", key)
assert marker["DeleteMarker"] is True, marker
aws_refused("AccessDenied", "s3api", "delete-object", "--bucket", bucket, "--key", key,
            "--version-id", marker["VersionId"])
code = driver.mfa()
aws("s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", marker["VersionId"], "--mfa", code)
other = aws("s3api", "delete-object", "--bucket", bucket, "--key", key)
aws_refused("AccessDenied", "s3api", "delete-object", "--bucket", bucket, "--key", key,
            "--version-id", other["VersionId"], "--mfa", code)
driver.advance(401 * 24 * 3600)
aws("s3api", "delete-object", "--bucket", bucket, "--key", key, "--version-id", v1, "--mfa", driver.mfa())
listed = aws("s3api", "list-object-versions", "--bucket", bucket)
assert {v["VersionId"] for v in listed["Versions"]} == {v2}, listed

step("delete-objects with one --mfa for the request")
third = aws("s3api", "put-object", "--bucket", bucket, "--key", "drafts/a.txt", "--body", "contract-v1.pdf")
gone = aws("s3api", "delete-objects", "--bucket", bucket, "--mfa", driver.mfa(), "--delete", json.dumps({
    "Objects": [{"Key": key, "VersionId": other["VersionId"]}, {"Key": "drafts/a.txt", "VersionId": third["VersionId"]}],
}))
assert [d["VersionId"] for d in gone["Deleted"]] == [other["VersionId"]], gone
assert [(e["VersionId"], e["Code"]) for e in gone["Errors"]] == [(third["VersionId"], "AccessDenied")], gone

step("aws s3 cp of a file, both ways")
# Below the CLI's 8 MiB multipart threshold: one PutObject.
with open("ledger-export.bin", "wb") as f:
    f.write(os.urandom(6 << 20))
aws("s3", "cp", "ledger-export.bin", "s3://%s/exports/ledger-export.bin" % bucket)
aws("s3", "cp", "s3://%s/exports/ledger-export.bin" % bucket, "ledger-export.back")
assert filecmp.cmp("ledger-export.bin", "ledger-export.back", shallow=False)
listing = aws("s3", "ls", "s3://%s/exports/" % bucket)
assert "ledger-export.bin" in listing, listing

step("aws s3 cp of 64 MiB: a multipart upload, one version")
with open("scan-archive.bin", "wb") as f:
    f.write(os.urandom(64 << 20))
aws("s3", "cp", "scan-archive.bin", "s3://%s/exports/scan-archive.bin" % bucket)
head = aws("s3api", "head-object", "--bucket", bucket, "--key", "exports/scan-archive.bin")
assert head["ContentLength"] == 64 << 20, head
assert head["ETag"].strip('"').endswith("-8"), head  # 8 parts of the CLI's 8 MiB chunks
assert "VersionId" in head, head
aws("s3", "cp", "s3://%s/exports/scan-archive.bin" % bucket, "scan-archive.back")
assert filecmp.cmp("scan-archive.bin", "scan-archive.back", shallow=False)
uploads = aws("s3api", "list-multipart-uploads", "--bucket", bucket)
assert not uploads.get("Uploads"), uploads
versions = aws("s3api", "list-object-versions", "--bucket", bucket, "--prefix", "exports/scan-archive.bin")
assert len(versions["Versions"]) == 1, versions
print("aws CLI flows: all passed", flush=True)
