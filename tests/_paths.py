"""Where the tests find data that do not ship with the package: the PEtab benchmark
collection, copied into `tests/data/petab` (see `tests/data/README.md`), or the
`petab/` folder of `$ODEINFER_SHARED_DATA` when that is set."""

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SHARED_DATA = Path(os.environ.get("ODEINFER_SHARED_DATA", TESTS / "data")).resolve()
PETAB = str(SHARED_DATA / "petab")
