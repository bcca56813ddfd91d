"""The line protocol between a client script and the Rust test that runs it
(tests/e2e/s3_clients.rs): the test owns the appliance's ManualClock and the
simulated MFA token, so the script asks it, on its own stdout, and reads the
answer on stdin:

    WORMBOX? CODE        -> "SERIAL CODE": the clock is first moved one 30 s
                            step on, so every code handed out is fresh
    WORMBOX? NOW         -> the appliance clock, in Unix seconds
    WORMBOX? ADVANCE N   -> "OK" once the clock moved N seconds on

Every other line the script prints is passed through to the test's output.
"""
import datetime
import os
import sys

_out = sys.__stdout__
_in = sys.__stdin__


def ask(question):
    _out.write("WORMBOX? %s\n" % question)
    _out.flush()
    answer = _in.readline()
    if not answer:
        raise RuntimeError("the test closed the line protocol (asked %r)" % question)
    return answer.rstrip("\n")


def mfa():
    """A fresh `SERIAL CODE` of the bucket owner's token."""
    return ask("CODE")


def now():
    """The appliance's time, as an aware datetime."""
    return datetime.datetime.fromtimestamp(int(ask("NOW")), tz=datetime.timezone.utc)


def advance(seconds):
    assert ask("ADVANCE %d" % seconds) == "OK"


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError("%s is not set: run this through tests/e2e/s3_clients.rs" % name)
    return value


def step(text):
    print("== %s" % text, flush=True)
