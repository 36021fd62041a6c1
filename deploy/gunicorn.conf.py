"""gunicorn settings for a Sunbid web node (生产部署).

Flask-SocketIO in threading mode (simple-websocket) needs ONE worker process per node with
many threads; scale out with more nodes behind a load balancer that keeps sessions sticky,
all sharing the Redis message queue (SUNBID_SOCKETIO_QUEUE). See deploy/README.md.
"""

import os

bind = os.environ.get("SUNBID_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = 1
threads = int(os.environ.get("SUNBID_THREADS", "64"))
timeout = 120  # large streamed bid uploads
graceful_timeout = 30
keepalive = 5
max_requests = 0  # long-lived WebSockets: never recycle a worker under them
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("SUNBID_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("SUNBID_FORWARDED_ALLOW_IPS", "127.0.0.1")
wsgi_app = "bidding.wsgi:app"
