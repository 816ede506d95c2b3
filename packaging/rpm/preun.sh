# ecs-diag %preun: on erase (not upgrade), stop and disable.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now ecs-diag.service >/dev/null 2>&1 || :
fi
