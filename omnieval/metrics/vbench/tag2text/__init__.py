"""Native PyTorch port of Tag2Text's captioner as VBench's ``scene`` dimension runs it (see :mod:`.model`)."""
from omnieval.metrics.vbench.tag2text.model import Tag2TextCaptioner, Tag2TextConfig, TagTokenizer, tag_names

__all__ = ["Tag2TextCaptioner", "Tag2TextConfig", "TagTokenizer", "tag_names"]
