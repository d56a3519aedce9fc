"""The HTTP API, one module per area; each registers its views when scanned."""


def includeme(config):
    config.include(".errors")
    config.include(".api")  # waitress's log: no traceback for a chunked answer cut short on purpose
    config.scan(".auth")
    config.scan(".records")
    config.scan(".nodes")
    config.scan(".job_types")
    config.scan(".plugins")
    config.scan(".templates")
    config.scan(".jobs")
    config.scan(".outputs")
    config.scan(".scale_job_types")
    config.include(".health")
