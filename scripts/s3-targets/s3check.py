#!/usr/bin/env python3
"""Checks that an S3 endpoint enforces what Wormbox's replication relies on.

For tests and development only; run by scripts/s3-targets/smoke.sh. The
endpoint and keys come from the environment (`eval "$(rgw.sh env DIR)"`).

  s3check.py lock BUCKET STATE   Object Lock bucket, a COMPLIANCE version with
                                 user metadata and a legal hold: a versioned
                                 DELETE and a shorter retention are refused;
                                 writes what it made to the STATE file
  s3check.py still BUCKET STATE  the version in STATE is still there, locked,
                                 held and byte-identical (after a restart)
  s3check.py mfa BUCKET SERIAL SEED_HEX [--expect-ignored]
                                 MFA Delete on a versioned bucket: a versioned
                                 DELETE without x-amz-mfa is refused, with a
                                 valid code it succeeds (--expect-ignored: the
                                 engine is known to ignore MFA Delete; report it)

Every refusal checked must be AccessDenied: any other outcome fails the run
with what the engine answered. Facts that are not guarantees (whether the
engine verifies and returns x-amz-checksum-sha256) are printed, not asserted.
"""

import base64
import datetime
import hashlib
import hmac
import json
import struct
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client():
    # Endpoint, keys and region from the AWS_* variables `env DIR` exports.
    return boto3.client("s3")


def say(msg):
    print(f"s3check: {msg}", flush=True)


def fail(msg):
    print(f"s3check: FAILED: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def refused(what, call):
    """`call` must fail with AccessDenied."""
    try:
        call()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code")
        if code == "AccessDenied":
            say(f"refused as it must be: {what} (AccessDenied)")
            return
        fail(f"{what}: refused with {code}, expected AccessDenied: {e}")
    fail(f"{what}: ACCEPTED, must be refused")


def utc(dt):
    return dt.astimezone(datetime.timezone.utc).replace(microsecond=0)


def b64sha256(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def check_version(s3, bucket, key, version, until, body, meta):
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=version)
    if head.get("ObjectLockMode") != "COMPLIANCE":
        fail(f"lock mode reads back {head.get('ObjectLockMode')!r}, expected COMPLIANCE")
    if utc(head["ObjectLockRetainUntilDate"]) != until:
        fail(f"retain-until reads back {head['ObjectLockRetainUntilDate']}, expected {until}")
    if head.get("Metadata") != meta:
        fail(f"user metadata reads back {head.get('Metadata')!r}, expected {meta!r}")
    hold = s3.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version)
    if hold["LegalHold"]["Status"] != "ON":
        fail(f"legal hold reads back {hold['LegalHold']['Status']!r}, expected ON")
    got = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    if got != body:
        fail("the version's bytes differ from what was written")
    say(f"version {version}: COMPLIANCE until {until.isoformat()}, legal hold ON, metadata and bytes intact")
    refused(
        "versioned DELETE of a locked version",
        lambda: s3.delete_object(Bucket=bucket, Key=key, VersionId=version),
    )


def lock(bucket, state_file):
    s3 = client()
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    conf = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    if conf.get("ObjectLockEnabled") != "Enabled":
        fail(f"bucket's Object Lock configuration reads back {conf!r}")
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        fail("an Object Lock bucket must be versioned")
    say(f"bucket {bucket}: Object Lock enabled, versioning enabled")

    key = "records/2026/one.eml"
    body = b"From: a@example.com\r\nSubject: a record\r\n\r\nkept for a day\r\n"
    meta = {"wormbox-version-id": "v-0001", "wormbox-ledger-seq": "42"}
    until = utc(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))
    put = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ChecksumSHA256=b64sha256(body),
        Metadata=meta,
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    version = put["VersionId"]
    say(f"put {key} version {version} COMPLIANCE for 1 day with x-amz-checksum-sha256")

    # Facts, not guarantees: the replicator must not rely on either.
    returned = s3.head_object(Bucket=bucket, Key=key, VersionId=version, ChecksumMode="ENABLED").get(
        "ChecksumSHA256"
    )
    # No retries: botocore retries a BadDigest as if it were transient.
    once = boto3.client("s3", config=Config(retries={"max_attempts": 1, "mode": "standard"}))
    try:
        once.put_object(Bucket=bucket, Key="checksum-probe", Body=b"x", ChecksumSHA256=b64sha256(b"y"))
        verified = "no: a wrong x-amz-checksum-sha256 was ACCEPTED"
    except ClientError as e:
        verified = f"yes (a wrong one is refused: {e.response['Error']['Code']})"
    say(f"fact: checksum-sha256 returned on HEAD: {'yes' if returned == b64sha256(body) else 'no'}; verified on PUT: {verified}")

    s3.put_object_legal_hold(Bucket=bucket, Key=key, VersionId=version, LegalHold={"Status": "ON"})
    say("legal hold placed")
    refused(
        "shortening COMPLIANCE retention",
        lambda: s3.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - datetime.timedelta(hours=1)},
        ),
    )
    refused(
        "turning COMPLIANCE into GOVERNANCE",
        lambda: s3.put_object_retention(
            Bucket=bucket,
            Key=key,
            VersionId=version,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
        ),
    )
    longer = until + datetime.timedelta(hours=1)
    s3.put_object_retention(
        Bucket=bucket, Key=key, VersionId=version, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer}
    )
    say("extending COMPLIANCE retention by an hour is accepted")
    check_version(s3, bucket, key, version, longer, body, meta)

    # A plain DELETE only adds a delete marker; the locked version stays.
    s3.delete_object(Bucket=bucket, Key=key)
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    versions = [v["VersionId"] for v in listed.get("Versions", [])]
    markers = [m["VersionId"] for m in listed.get("DeleteMarkers", [])]
    if versions != [version] or len(markers) != 1:
        fail(f"list-object-versions shows versions {versions} and delete markers {markers}")
    say("plain DELETE added a delete marker; list-object-versions shows the locked version under it")

    with open(state_file, "w") as f:
        json.dump(
            {"key": key, "version": version, "until": longer.isoformat(), "body": body.decode(), "meta": meta}, f
        )


def still(bucket, state_file):
    with open(state_file) as f:
        st = json.load(f)
    until = datetime.datetime.fromisoformat(st["until"])
    check_version(client(), bucket, st["key"], st["version"], until, st["body"].encode(), st["meta"])


def totp(seed_hex, at=None, step=30, digits=6):
    """RFC 6238 TOTP (HMAC-SHA1), the algorithm RGW's `mfa create` devices use."""
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(bytes.fromhex(seed_hex), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{code:0{digits}d}"


def mfa(bucket, serial, seed_hex, expect_ignored):
    s3 = client()
    s3.create_bucket(Bucket=bucket)
    first = totp(seed_hex)
    s3.put_bucket_versioning(
        Bucket=bucket,
        MFA=f"{serial} {first}",
        VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
    )
    state = s3.get_bucket_versioning(Bucket=bucket)
    say(f"bucket {bucket}: versioning {state.get('Status')}, MFA Delete {state.get('MFADelete')}")
    version = s3.put_object(Bucket=bucket, Key="k", Body=b"mfa")["VersionId"]
    if expect_ignored:
        try:
            s3.delete_object(Bucket=bucket, Key="k", VersionId=version)
            say("fact: this engine IGNORES MFA Delete (a versioned DELETE without x-amz-mfa succeeded)")
        except ClientError as e:
            say(f"fact: this engine now refuses a versioned DELETE without x-amz-mfa ({e.response['Error']['Code']})")
        return
    if state.get("MFADelete") != "Enabled":
        fail(f"MFA Delete reads back {state.get('MFADelete')!r}, expected Enabled")
    refused(
        "versioned DELETE without x-amz-mfa on an MFA Delete bucket",
        lambda: s3.delete_object(Bucket=bucket, Key="k", VersionId=version),
    )
    refused(
        "versioned DELETE with a wrong code",
        lambda: s3.delete_object(
            Bucket=bucket, Key="k", VersionId=version, MFA=f"{serial} {totp(seed_hex, time.time() - 3600)}"
        ),
    )
    try:
        s3.delete_object(Bucket=bucket, Key="k", VersionId=version, MFA=f"{serial} {first}")
        say("fact: a TOTP code already used is accepted again")
        version = s3.put_object(Bucket=bucket, Key="k", Body=b"mfa")["VersionId"]
    except ClientError as e:
        say(f"fact: a TOTP code already used is refused ({e.response['Error']['Code']}): one code per operation")
    # A code unused yet and inside the device's window: this step's, unless
    # it is the one already spent, else the next step's. (Always the next
    # step's was two steps ahead, and refused, when the clock had crossed into
    # the step after the first code's meanwhile.)
    now = time.time()
    code = totp(seed_hex, now)
    if code == first:
        code = totp(seed_hex, now + 30)
    s3.delete_object(Bucket=bucket, Key="k", VersionId=version, MFA=f"{serial} {code}")
    if s3.list_object_versions(Bucket=bucket).get("Versions"):
        fail("the versioned DELETE with a valid code left the version in place")
    say("versioned DELETE with a valid, unused TOTP code succeeds")


def main(argv):
    if len(argv) == 4 and argv[1] == "lock":
        lock(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "still":
        still(argv[2], argv[3])
    elif len(argv) in (5, 6) and argv[1] == "mfa":
        mfa(argv[2], argv[3], argv[4], argv[5:] == ["--expect-ignored"])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv)
