"""RQ for jitbot: the worker process, and (jobs) the dotted job paths an older jitbot queued."""
