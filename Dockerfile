# geodns: `docker build -t geodns . && docker run -p 53:53/udp -p 53:53/tcp geodns`
# Mount your zones over /etc/geodns/zones (-v $PWD/zones:/etc/geodns/zones:ro).
FROM python:3.11-slim

RUN useradd --system --home /var/lib/geodns --shell /usr/sbin/nologin geodns
WORKDIR /src
COPY pyproject.toml README.md ./
COPY geodns ./geodns
# gcc and libmaxminddb-dev let maxminddb build its C reader (10x faster GeoIP lookups).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* /src
COPY geodns/example/example.com.yaml /etc/geodns/zones/example.com.yaml
# Forces and rollouts (the zones are usually mounted read-only), and merged ECS scopes.
RUN install -d -o geodns -g geodns /var/lib/geodns /var/cache/geodns

USER geodns
EXPOSE 53/udp 53/tcp
# Port 53 as a non-root user: Docker (20.10+) sets net.ipv4.ip_unprivileged_port_start=0
# inside the container's network namespace, so no capability is needed.
ENTRYPOINT ["geodns"]
# The admin side stays on the container's loopback unless you publish it with a token:
#   ... serve ... --http 0.0.0.0:8053 --admin-token-file /run/secrets/geodns-admin-token
CMD ["serve", "--zones", "/etc/geodns/zones", "--listen", "0.0.0.0:53", "--workers", "2", \
     "--state-dir", "/var/lib/geodns", "--scope-cache", "/var/cache/geodns"]
