"""xcs: put ``@jit`` on a plain Python function and its independent calls run in parallel.

The jitted function returns, raises and calls exactly what the plain one
would; only the timing changes.  See ``jit`` for the knobs (there is one:
the executor) and ``f.stats()`` / ``f.explain()`` for what was decided.
"""

from xcs._errors import XcsError, XcsWarning
from xcs._executors import throttle
from xcs._jit import Jitted, SignatureStats, Stats, jit
from xcs._verify import VerifyError, verify

__all__ = ["Jitted", "SignatureStats", "Stats", "VerifyError", "XcsError", "XcsWarning", "jit",
           "throttle", "verify"]
__version__ = "0.1.0"
