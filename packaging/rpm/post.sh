# ecs-diag %post: enable and start on first install, restart on upgrade; nothing where systemd
# is not running (containers, image builds).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now ecs-diag.service >/dev/null 2>&1 || :
    else
        systemctl try-restart ecs-diag.service >/dev/null 2>&1 || :
    fi
fi
