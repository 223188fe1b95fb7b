"""A custom metric too large for a float is dropped like NaN, and the ticket's log still ships
(the bridge's metric check raised OverflowError on it and the whole log was lost)."""
from otel_bridge import record, workflow


def test_a_huge_integer_metric_is_dropped_not_fatal(memory_bridge):
    @workflow("t")
    def handle(ticket):
        record.metric("huge", 10**400)
        record.metric("fine", 3)
        return 1

    assert handle({}) == 1
    (log,) = memory_bridge(1)
    assert "huge" not in log["metrics"] and log["metrics"]["fine"] == 3
