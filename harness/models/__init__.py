"""Model sources: the zoo, the digits and encoder-mini models, and the `TorchModel` interface through
which a `package.module:function` source hands speedproof its module and data::

    from harness.models import LabelledData, TorchModel
"""

from harness.models.data import LabelledData, TorchModel

__all__ = ["LabelledData", "TorchModel"]
