"""A pytest plugin (`-p boto2_shim`) that lets boto 2.49.0's own integration
tests (tests/integration/s3/test_versioning.py and test_mfa.py from its
source distribution) run unmodified against wormboxd, without touching
boto's files or the tests':

- Python 3.10+ compatibility for boto 2's imports (the ABC aliases of
  `collections`, `imp` on 3.12+, its vendored `six` on 3.12+);
- `nose.plugins.attrib.attr`, which test_mfa imports (nose does not import
  on 3.12+), as a no-op decorator when nose is absent or does not import;
- Python 2's `raw_input`, which test_mfa calls for the serial ("MFA S/N: ",
  from $MFA_SERIAL) and three codes ("MFA Code: ", each a fresh code of the
  simulated token, asked from the Rust test over driver.py's line protocol);
- the port: boto 2's config has no port setting, so a bare `S3Connection()`
  gets $S3_PORT (host, credentials, `is_secure = False` and
  `OrdinaryCallingFormat` come from the boto config file in $BOTO_CONFIG).
"""
import builtins
import collections
import collections.abc
import importlib
import importlib.abc
import importlib.util
import os
import sys
import types

import driver

for _name in ("Mapping", "MutableMapping", "Callable", "Iterable", "Sequence", "MutableSet", "Set"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

if sys.version_info >= (3, 12):
    if importlib.util.find_spec("imp") is None:
        _imp = types.ModuleType("imp")

        def _unsupported(*args, **kwargs):
            raise ImportError("imp is gone from Python 3.12")

        _imp.find_module = _imp.load_module = _unsupported
        _imp.acquire_lock = _imp.release_lock = lambda: None
        sys.modules["imp"] = _imp

    class _SixAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """boto.vendored.six's meta importer has no find_spec: use six."""

        prefix = "boto.vendored.six"

        def find_spec(self, name, path=None, target=None):
            if name == self.prefix or name.startswith(self.prefix + "."):
                return importlib.util.spec_from_loader(name, self)
            return None

        def create_module(self, spec):
            return importlib.import_module("six" + spec.name[len(self.prefix):])

        def exec_module(self, module):
            pass

    sys.meta_path.insert(0, _SixAlias())

def _nose_imports():
    try:
        importlib.import_module("nose.plugins.attrib")
        return True
    except Exception:  # absent, or nose 1.3.7 on Python 3.12+ (unittest._TextTestResult is gone)
        for _module in [m for m in sys.modules if m == "nose" or m.startswith("nose.")]:
            del sys.modules[_module]
        return False


if not _nose_imports():
    def attr(*args, **kwargs):
        def mark(obj):
            for name in args:
                setattr(obj, name, True)
            for name, value in kwargs.items():
                setattr(obj, name, value)
            return obj
        return mark

    for _module in ("nose", "nose.plugins", "nose.plugins.attrib"):
        sys.modules[_module] = types.ModuleType(_module)
    sys.modules["nose.plugins.attrib"].attr = attr


def raw_input(prompt=""):
    if prompt.startswith("MFA S/N"):
        return driver.env("MFA_SERIAL")
    if prompt.startswith("MFA Code"):
        serial, code = driver.mfa().split(" ")
        assert serial == driver.env("MFA_SERIAL"), serial
        return code
    raise RuntimeError("unexpected raw_input prompt %r" % prompt)


builtins.raw_input = raw_input

import boto.s3.connection  # noqa: E402 (after the compatibility shims)

_init = boto.s3.connection.S3Connection.__init__


def _init_with_port(self, *args, **kwargs):
    # S3Connection(aws_access_key_id, aws_secret_access_key, is_secure, port, ...)
    if len(args) < 4 and "port" not in kwargs:
        kwargs["port"] = int(driver.env("S3_PORT"))
    _init(self, *args, **kwargs)


boto.s3.connection.S3Connection.__init__ = _init_with_port
