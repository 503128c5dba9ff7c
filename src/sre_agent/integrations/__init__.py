"""Chat and paging destinations (Slack, Microsoft Teams, PagerDuty): vendor formatting and
transport, one file per vendor, behind the ``ChatDestination`` port; fed by the delivery worker
(``pipeline/delivery.py``)."""
