# ecs-diag %postun: reload unit files after erase or upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
# Erase ($1 = 0, not an upgrade) removes the status history too (GET /v1/history).
if [ "$1" = "0" ]; then
    rm -rf /var/lib/ecs-diag /var/lib/private/ecs-diag
fi
