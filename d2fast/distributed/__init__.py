"""D2 Pruning beyond one machine: sharded inputs, a partitioned kNN graph and bulk-synchronous
message passing over shard actors on Ray (``engine="ray"``) or in one process
(``engine="local"``). See SPEC section 8."""
