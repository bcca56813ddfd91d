#!/usr/bin/env python3
"""Checks a Wormbox Merkle proof file without Wormbox's code.

An independent verifier for regulators: it shares no code with the appliance
(Python's standard library and the `cryptography` package only), and checks
what `wormbox verify-proof` checks, from the formats as documented:

  * the checkpoint's Ed25519 signature under a public key you obtained
    elsewhere, over  b"wormbox checkpoint v2\\n" | sequence u64 | head 32 |
    time i64 | tree_root 32  (big-endian);
  * the ledger entry's leaf, SHA-256(0x00 || entry), and its audit path to the
    signed root (RFC 9162 section 2.1.3.2);
  * that the entry's bytes say what the file describes (its canonical
    encoding is decoded here field by field);
  * with --bytes, that the record's bytes have the SHA-256 the entry names.

A consistency proof file (`wormbox verify-consistency --out`) is checked with
--consistency: both checkpoints' signatures and RFC 9162 section 2.1.4.2.
A checkpoint as a C2SP signed note (`wormbox checkpoint --note`) is opened
with --note: its signature line of the appliance's key (signed-note key hash
SHA-256(name || 0x0A || 0x01 || key)[:4]) over its body, and the body's
origin, size and root (C2SP tlog-checkpoint).

    verify_proof.py PROOF.json --public-key appliance.pub [--bytes FILE]
    verify_proof.py --consistency PROOF.json --public-key appliance.pub
    verify_proof.py --note CHECKPOINT.note --public-key appliance.pub [--witness VKEY ...]

With --witness (a witness's verifier key, `<name>+<key id>+base64(0x04 ||
key)`, as `wormbox witness init` prints it), the note must also carry that
witness's cosignature (C2SP tlog-cosignature, Ed25519 cosignature/v1: over
"cosignature/v1\\ntime <t>\\n" and the note's body).

Exit status 0 when the proof holds, 1 when it does not (the reason on
stderr), 2 on bad usage.
"""

import argparse
import base64
import datetime
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

INCLUSION_FORMAT = "wormbox-inclusion-proof/1"
CONSISTENCY_FORMAT = "wormbox-consistency-proof/1"
CONTEXT_V2 = b"wormbox checkpoint v2\n"
# Ledger operation codes (ledger.rs), by their stable names.
OPS = [
    "bucket-created", "bucket-deleted", "versioning-changed", "version-written", "marker-written",
    "version-purged", "principal-created", "principal-revoked", "mfa-enrolled", "mfa-activated",
    "mfa-resynced", "mfa-accepted", "mfa-refused", "mfa-deactivated", "retention-changed", "hold-placed",
    "hold-released", "object-lock-changed", "refused", "clock-held-back", "clock-accepted",
    "integrity-verified", "integrity-failed", "clock-caught-up", "bytes-released", "version-restored",
    "archive-restored", "s3-key-created", "s3-key-revoked",
]
VERSION_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Refused(Exception):
    """The proof does not hold."""


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def unhex(text, size=None, what="value"):
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raise Refused(f"the {what} is not hex")
    if size is not None and len(raw) != size:
        raise Refused(f"the {what} has {len(raw)} bytes, not {size}")
    return raw


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, path):
    """RFC 9162 section 2.1.4.2 (the empty tree is extended by every tree)."""
    if first > second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path and first_root == hashlib.sha256(b"").digest()
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


def integer(value, what):
    """A JSON integer, not a boolean or a float that happens to compare equal."""
    if type(value) is not int or not 0 <= value < 1 << 64:
        raise Refused(f"the {what} is not an unsigned 64-bit integer")
    return value


def signed_root(checkpoint, public_key):
    """The checkpoint's sequence and root, once its signature is checked."""
    if checkpoint.get("tree_root") is None:
        raise Refused("the checkpoint was signed before the Merkle tree and names no root")
    sequence = integer(checkpoint["sequence"], "checkpoint's sequence")
    time = checkpoint["time_unix_micros"]
    if type(time) is not int or not -(1 << 63) <= time < 1 << 63:
        raise Refused("the checkpoint's time is not a signed 64-bit integer")
    head = unhex(checkpoint["head"], 32, "checkpoint's head")
    root = unhex(checkpoint["tree_root"], 32, "checkpoint's tree root")
    signature = unhex(checkpoint["signature"], 64, "checkpoint's signature")
    message = CONTEXT_V2 + struct.pack(">Q", sequence) + head + struct.pack(">q", time) + root
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        raise Refused(f"the checkpoint at ledger entry {sequence} is not signed by this key")
    return sequence, root


class Reader:
    """The canonical encoding's primitives (ledger.rs): big-endian integers,
    strings as a u32 length then UTF-8."""

    def __init__(self, raw):
        self.raw, self.at = raw, 0

    def take(self, n):
        if self.at + n > len(self.raw):
            raise Refused("the entry's bytes end early")
        out = self.raw[self.at:self.at + n]
        self.at += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def string(self):
        (length,) = struct.unpack(">I", self.take(4))
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("the entry holds a string that is not UTF-8")

    def optional(self, size):
        flag = self.u8()
        if flag not in (0, 1):
            raise Refused("the entry has a malformed presence flag")
        return self.take(size) if flag else None


def version_id(raw):
    value = int.from_bytes(raw, "big")
    out = []
    for _ in range(26):
        out.append(VERSION_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def rfc3339(micros):
    when = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(microseconds=micros)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}Z"


def decode_entry(raw):
    """A ledger entry's canonical bytes, format 1 or 2, field by field."""
    r = Reader(raw)
    fmt = r.u8()
    if fmt not in (1, 2):
        raise Refused(f"the entry is in an unknown format ({fmt})")
    entry = {"sequence": r.u64(), "time": r.i64()}
    code = r.u8()
    if not 1 <= code <= len(OPS):
        raise Refused(f"the entry names an unknown operation ({code})")
    entry["op"] = OPS[code - 1]
    entry["principal"] = r.string()
    entry["bucket"] = r.string()
    entry["key"] = r.string()
    version = r.optional(16)
    entry["version_id"] = version_id(version) if version is not None else None
    sha256 = r.optional(32)
    entry["sha256"] = sha256.hex() if sha256 is not None else None
    if fmt == 2:
        r.optional(32)  # the version record's SHA-256
        r.optional(32)  # the lock record's SHA-256
    r.string()  # detail
    if r.at != len(raw):
        raise Refused("the entry has bytes after its last field")
    return entry


def check_inclusion(doc, public_key, record):
    if doc.get("format") != INCLUSION_FORMAT:
        raise Refused(f"not an inclusion proof of format {INCLUSION_FORMAT}")
    size, root = signed_root(doc["checkpoint"], public_key)
    if integer(doc["tree_size"], "tree size") != size:
        raise Refused(f"the proof is for a tree of {doc['tree_size']} entries, the checkpoint signs one of {size}")
    raw = unhex(doc["entry"], None, "entry")
    entry = decode_entry(raw)
    sequence = integer(doc["ledger_sequence"], "ledger sequence")
    if sequence < 1 or entry["sequence"] != sequence:
        raise Refused(f"the entry is number {entry['sequence']}, the proof says {sequence}")
    described = doc["described"]
    said = {
        "op": entry["op"], "time": rfc3339(entry["time"]), "principal": entry["principal"],
        "bucket": entry["bucket"], "key": entry["key"], "version_id": entry["version_id"], "sha256": entry["sha256"],
    }
    if said != described:
        raise Refused("the file's description of the entry is not what its bytes say")
    path = [unhex(h, 32, "path hash") for h in doc["path"]]
    if not verify_inclusion(sequence - 1, size, leaf_hash(raw), path, root):
        raise Refused(f"the path does not lead from entry {sequence} to the signed root of {size} entries")
    if record is not None:
        if entry["sha256"] is None:
            raise Refused("the entry names no record bytes to compare")
        if hashlib.sha256(record).hexdigest() != entry["sha256"]:
            raise Refused("the bytes given do not have the SHA-256 the entry names")
    return entry, size


def check_consistency(doc, public_key):
    if doc.get("format") != CONSISTENCY_FORMAT:
        raise Refused(f"not a consistency proof of format {CONSISTENCY_FORMAT}")
    first, first_root = signed_root(doc["old"], public_key)
    second, second_root = signed_root(doc["new"], public_key)
    path = [unhex(h, 32, "path hash") for h in doc["path"]]
    if not verify_consistency(first, second, first_root, second_root, path):
        raise Refused(f"the tree of {second} entries does not extend the tree of {first}")
    return first, second


def open_note(text, raw_key, public_key):
    """A tlog-checkpoint signed note of the appliance's log: (size, root)."""
    name = "wormbox.invalid/" + hashlib.sha256(raw_key).hexdigest()[:16]
    body, sep, signatures = text.partition("\n\n")
    if not sep or not text.endswith("\n"):
        raise Refused("the note has no signature block")
    body += "\n"
    key_hash = hashlib.sha256(name.encode() + b"\n\x01" + raw_key).digest()[:4]
    verified = False
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            raise Refused("the note has a signature line without its dash")
        line_name, _, blob = line[2:].partition(" ")
        try:
            blob = base64.b64decode(blob, validate=True)
        except ValueError:
            raise Refused("the note has a signature that is not base64")
        if line_name != name or len(blob) != 68 or blob[:4] != key_hash:
            continue
        try:
            public_key.verify(blob[4:], body.encode())
        except InvalidSignature:
            raise Refused(f"the note is not signed by {name}")
        verified = True
    if not verified:
        raise Refused(f"the note carries no signature of {name}")
    lines = body.split("\n")
    if len(lines) < 4 or lines[0] != name:
        raise Refused(f"the note is not a checkpoint of {name}")
    size, root = lines[1], lines[2]
    if not (size.isascii() and size.isdigit()) or (size != "0" and size.startswith("0")) or int(size) >= 1 << 64:
        raise Refused("the note's tree size is malformed")
    root = base64.b64decode(root, validate=True)
    if len(root) != 32:
        raise Refused("the note's root hash is malformed")
    return int(size), root


def check_cosignature(text, vkey):
    """The timestamp of the cosignature of witness `vkey` on note `text`."""
    name, key_id, typed = (vkey.split("+", 2) + ["", ""])[:3]
    try:
        typed = base64.b64decode(typed, validate=True)
    except ValueError:
        raise Refused("the witness key is not base64")
    if not name or len(typed) != 33 or typed[0] != 0x04:
        raise Refused("the witness key is not an Ed25519 cosignature/v1 verifier key")
    expected_id = hashlib.sha256(name.encode() + b"\n\x04" + typed[1:]).digest()[:4]
    if expected_id.hex() != key_id.lower():
        raise Refused("the witness key's id is not the one its name and key make")
    witness = Ed25519PublicKey.from_public_bytes(typed[1:])
    body, _, signatures = text.partition("\n\n")
    body += "\n"
    for line in signatures.splitlines():
        line_name, _, blob = line[2:].partition(" ")
        if not line.startswith("\u2014 ") or line_name != name:
            continue
        try:
            blob = base64.b64decode(blob, validate=True)
        except ValueError:
            continue
        if len(blob) != 76 or blob[:4] != expected_id:
            continue
        timestamp = struct.unpack(">Q", blob[4:12])[0]
        if timestamp > (1 << 63) - 1:
            continue
        message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
        try:
            witness.verify(blob[12:], message)
        except InvalidSignature:
            continue
        return timestamp
    raise Refused(f"the note carries no valid cosignature of witness {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("proof")
    parser.add_argument("--public-key", required=True, help="the appliance's public key, 64 hex digits")
    parser.add_argument("--bytes", help="the record's bytes, checked against the entry's SHA-256")
    parser.add_argument("--consistency", action="store_true", help="the file is a consistency proof")
    parser.add_argument("--note", action="store_true", help="the file is a checkpoint as a signed note")
    parser.add_argument("--witness", action="append", default=[], help="with --note: a witness's verifier key whose cosignature the note must carry")
    args = parser.parse_args()
    if args.witness and not args.note:
        parser.error("--witness checks a cosignature on a signed note: give --note")
    try:
        with open(args.public_key, encoding="ascii") as f:
            raw_key = unhex(f.read().strip(), 32, "public key")
        key = Ed25519PublicKey.from_public_bytes(raw_key)
        if args.note:
            with open(args.proof, encoding="utf-8", newline="") as f:
                text = f.read()
            size, root = open_note(text, raw_key, key)
            cosigned = ""
            for vkey in args.witness:
                timestamp = check_cosignature(text, vkey.strip())
                when = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat()
                cosigned += f"; cosigned by {vkey.split('+', 1)[0]} at {when}"
            print(f"ok: a signed checkpoint of {size} entries, root {root.hex()}{cosigned}")
            return 0
        with open(args.proof, encoding="utf-8") as f:
            doc = json.load(f)
        if args.consistency:
            first, second = check_consistency(doc, key)
            print(f"ok: the tree of {second} entries extends the tree of {first}")
        else:
            record = None
            if args.bytes:
                with open(args.bytes, "rb") as f:
                    record = f.read()
            entry, size = check_inclusion(doc, key, record)
            checked = "; the bytes match its SHA-256" if record is not None else ""
            print(f"ok: ledger entry {entry['sequence']} ({entry['op']} {entry['bucket']}/{entry['key']}) "
                  f"is in the signed tree of {size} entries{checked}")
    except Refused as why:
        print(f"refused: {why}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, OverflowError, struct.error) as why:
        print(f"refused: the file cannot be read as a proof ({why!r})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
