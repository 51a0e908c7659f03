"""Commerce Mesh's own topology: one events topic per service, one subscription per consumer."""

from __future__ import annotations

from services.chassis.events.topology import Subscription, Topic, Topology, events_topic

SERVICES = ("checkout", "payments", "ledger", "invoicing")

# Invoicing issues invoices on CheckoutCompleted and follows captures and refunds (DESIGN.md,
# "The money flow"). Services add their subscriptions here as they are built.
MESH_TOPOLOGY = Topology(
    topics=tuple(Topic(events_topic(service)) for service in SERVICES),
    subscriptions=(
        Subscription(name="invoicing-from-checkout", topic=events_topic("checkout")),
        Subscription(name="invoicing-from-payments", topic=events_topic("payments")),
    ),
)
