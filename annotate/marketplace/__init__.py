"""An MTurk-compatible marketplace that annotate ships, since moto has no MTurk.

An outside system we emulate: the rest of annotate meets it only over HTTP, with boto3, exactly as
it meets the real MTurk. It imports nothing from annotate except `annotate.fees`.
"""

from annotate.marketplace.server import MarketplaceServer

__all__ = ["MarketplaceServer"]
