# A Python worker: ifpx.subscribers only. No pyroute2, no netlink, no capabilities,
# no network: it reaches the bridge through the ipc sockets on the /run/ifpx volume.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/ifpx \
 && /opt/ifpx/bin/pip install --no-index --find-links /tmp/wheels --no-deps ifpx \
 && /opt/ifpx/bin/pip install --no-index --find-links /tmp/wheels --no-warn-conflicts \
      pyzmq msgpack pydantic \
 && rm -rf /tmp/wheels \
 && /opt/ifpx/bin/python -c "import ifpx.subscribers, sys; assert 'pyroute2' not in sys.modules"
ENV PATH=/opt/ifpx/bin:$PATH
USER 10001:100
ENTRYPOINT ["python", "-m", "ifpx.subscribers.workers"]
CMD ["--workers", "2"]
