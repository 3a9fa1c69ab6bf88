# A Python worker: ifpx without the bridge extra. No pyroute2, no prometheus-client, no
# netlink, no capabilities, no network: it reaches the bridge through the ipc sockets on
# the /run/ifpx volume.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/ifpx \
 && /opt/ifpx/bin/pip install --no-index --find-links /tmp/wheels ifpx \
 && rm -rf /tmp/wheels \
 && /opt/ifpx/bin/python -c "import importlib.util as u, ifpx.subscribers; \
      assert u.find_spec('pyroute2') is None and u.find_spec('prometheus_client') is None"
ENV PATH=/opt/ifpx/bin:$PATH
USER 10001:100
ENTRYPOINT ["python", "-m", "ifpx.subscribers.workers"]
CMD ["--workers", "2"]
