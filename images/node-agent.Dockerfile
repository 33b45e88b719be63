# The node agent: `mig-manager`, which partitions GPUs through NVML. It runs privileged as root, like NVIDIA's MIG
# manager: it changes MIG modes, resets GPUs and, with host GPU client shutdown, drives the host's systemd through
# `chroot /host`. NVML (libnvidia-ml.so.1) comes from the host driver through the NVIDIA container toolkit.
#   docker build -f images/node-agent.Dockerfile -t IMAGE .    (or: make images)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator ./operator
COPY node-agent ./node-agent
COPY sim ./sim
RUN pip wheel --no-cache-dir -c constraints.txt -w /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=utility,compute
EXPOSE 8080
ENTRYPOINT ["mig-manager"]
