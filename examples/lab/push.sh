#!/usr/bin/env bash
# Push examples/lab/ to the lab master's manifest repository, as a user of the cluster would,
# then wait until the controller has the pods running and print them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
master=172.30.0.10
ssh_opts=(-i "$repo/.lab/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o BatchMode=yes)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/*.yaml "$work/"
git -C "$work" init -q -b main
git -C "$work" add -A
git -C "$work" -c user.name=podyard-demo -c user.email=demo@podyard.invalid commit -qm "Lab example"
GIT_SSH_COMMAND="ssh ${ssh_opts[*]}" \
  git -C "$work" push -q --force "ssh://podyard@$master/srv/podyard/manifests.git" main
get_pods=(ssh "${ssh_opts[@]}" "root@$master"
          sudo -u podyard /opt/podyard/venv/bin/podyard --cluster /etc/podyard/cluster.yml get pods)
for _ in $(seq 60); do
  if [ "$("${get_pods[@]}" 2>/dev/null | grep -c ' Running ')" -ge 4 ]; then break; fi
  sleep 1
done
"${get_pods[@]}"
