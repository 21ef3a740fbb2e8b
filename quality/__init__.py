"""Quality control: rules checked on every message, alerts to supervisors, whisper and take over.

Data path: the gateway keeps a message (``kefu.conversation``) → :class:`QualityMonitor` checks
it against the live :mod:`quality.rules` (and the anger model of :mod:`quality.anger`) → an alert
goes to the ``qa`` stream and to the supervisors' consoles (:mod:`quality.api`'s event stream).
"""

from quality.monitor import QualityMonitor
from quality.runtime import QualityRuntime
from quality.service import QualityService, is_supervisor
from quality.store import QualityStore

__all__ = ["QualityMonitor", "QualityRuntime", "QualityService", "QualityStore", "is_supervisor"]
