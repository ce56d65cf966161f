from ._crossing import Crossing as Crossing
from ._dose import Dose as Dose
