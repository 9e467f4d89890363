"""The runtime: the split early-exit model run for real across worker
processes, with bounded queues, emulated devices and links, and one record
per request (see docs/background/runtime.md). Heavy imports (torch, zmq)
happen inside the functions that need them."""

from ._deployment import (MAX_HEADER_BYTES, Deployment, ExitPolicySpec, LinkStage, WorkerSpec,
                          deployment_from_dict, load_deployment)

__all__ = ["Deployment", "WorkerSpec", "LinkStage", "ExitPolicySpec", "load_deployment",
           "deployment_from_dict", "MAX_HEADER_BYTES"]
