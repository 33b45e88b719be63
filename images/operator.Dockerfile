# The cluster operator: `gpu-operator run`, as a non-root user with a read-only root filesystem.
# Built from the project's wheel with the pinned dependencies of constraints.txt:
#   docker build -f images/operator.Dockerfile -t IMAGE .      (or: make images)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator ./operator
COPY node-agent ./node-agent
COPY sim ./sim
RUN pip wheel --no-cache-dir -c constraints.txt -w /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin operator
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080 8081
ENTRYPOINT ["gpu-operator"]
CMD ["run", "--leader-elect"]
