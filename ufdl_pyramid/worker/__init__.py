"""The worker: a process that takes jobs from a ufdl-pyramid server and runs them with the installed executors.

``api.UfdlApi`` is its HTTP client (standard library only), ``context.HttpExecutionContext`` the execution
context it gives executors, ``runner.Worker`` the loop. ``ufdl worker`` (``cli/worker.py``) starts it.
No Pyramid here.
"""
