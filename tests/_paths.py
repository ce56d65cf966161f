"""Where the tests find data that do not ship with the package: the PEtab benchmark
collection, in `$ODEINFER_SHARED_DATA` if set, else `<repo>/../shared/data` (the folder
next to the checkout). Tests that need it skip cleanly where it is missing."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("ODEINFER_SHARED_DATA", REPO.parent / "shared" / "data")
).resolve()
PETAB = str(SHARED_DATA / "petab")
