from ._fit import fit as fit
from ._multistart import MultistartResult as MultistartResult
from ._multistart import multistart as multistart
from ._profile import ProfileResult as ProfileResult
from ._profile import profile as profile
from ._result import FitResult as FitResult
from ._trust_region import TrustRegionReflective as TrustRegionReflective
