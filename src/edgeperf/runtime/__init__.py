"""The runtime: the split early-exit model run for real across worker
processes, with bounded queues, emulated devices and links, and one record
per request (see docs/background/runtime.md).

``plan_deployment`` turns a scenario into a deployment, ``run_deployment``
runs it (one worker process per device, a load generator, a collector) and
``twin_report`` puts the measured metrics next to the analytic and simulated
predictions. Heavy imports (torch, zmq) happen inside the modules that run.
"""

from ._collector import AccountingError, Ledger
from ._deployment import (MAX_HEADER_BYTES, Deployment, ExitPolicySpec, LinkStage, WorkerSpec,
                          deployment_from_dict, load_deployment)
from ._orchestrator import Failure, RunResult, WorkerStartError, run_deployment
from ._plan import DEFAULT_THRESHOLD, plan_deployment
from ._twin import twin_report

__all__ = ["Deployment", "WorkerSpec", "LinkStage", "ExitPolicySpec", "load_deployment",
           "deployment_from_dict", "MAX_HEADER_BYTES", "plan_deployment", "DEFAULT_THRESHOLD",
           "run_deployment", "RunResult", "Failure", "WorkerStartError", "twin_report",
           "Ledger", "AccountingError"]
