"""A dynamic provider whose ``read`` answers with the id it was asked for and the names of the properties it got.

For tests of the provider server's Read: the provider process imports this module by name (dill pickles the
class by reference), so what the answer holds shows the call reached the provider.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import ReadResult, ResourceProvider


class EchoReadProvider(ResourceProvider):
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, {"read_id": id_, "got": sorted(props)})
