"""moto_server with streams kept the way AWS keeps them, and delivery left to the twin.

Why this exists: for every record written to a stream that has a Lambda event source
mapping, moto tries to invoke the function itself, in Docker. There is no Docker here.
For a DynamoDB stream it then *drops* the records, so they would vanish unseen; for a
Kinesis stream the failed attempt costs about 1.4 ms per record and mapping (2,000
records with two mappings: 2.9 s to put, 0.19 s without). In AWS a stream keeps its
records for 24 hours whoever reads them, and Lambda's mapping is one more reader; the
twin plays that reader for both kinds (`infra/pricewire/src/twin.rs`). So this keeps
every DynamoDB stream record and skips the attempts.

And a Query on a table's own key reads one partition, as in DynamoDB: moto sorts every
item of the table for each Query (112 ms with 10,000 items, against 7 ms for a GetItem),
which made the consumer, which reads each entity's partition before writing, wait on the
emulator rather than on its own work. Results are unchanged; only the items moto looks at.
"""

import sys
import threading

from moto.awslambda import models as _lambda
from moto.dynamodb.models import table as _table


def _keep(self, old, new):
    view = self.table.stream_specification["StreamViewType"]
    if old is None:
        event = "INSERT"
    elif new is None:
        event = "REMOVE"
    else:
        event = "MODIFY"
    seq = len(self.items) + self.starting_sequence_number
    self.items.append(_table.StreamRecord(self.table, view, event, old, new, seq))


_table.StreamShard.add = _keep


def _not_here(self, *args, **kwargs):
    return None


_lambda.LambdaBackend.send_kinesis_message = _not_here

_partition = threading.local()
_all_items = _table.Table.all_items
_query = _table.Table.query


def _items_of_partition(self):
    scope = getattr(_partition, "scope", None)
    if scope is not None and scope[0] is self:
        return sorted(scope[1].values(), key=lambda item: item.range_key)
    return _all_items(self)


def _partition_query(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name is not None or not self.range_key_attr or hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    _partition.scope = (self, self.items.get(hash_key, {}))
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _partition.scope = None


_table.Table.all_items = _items_of_partition
_table.Table.query = _partition_query

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
