#!/usr/bin/env bash
# Push examples/lab/ to the lab master's manifest repository, as a user of the cluster would,
# then wait until the controller has the pods running and print them.
# The repository refuses force pushes: the new manifests are committed on top of its branch,
# replacing what was there (files not in examples/lab/ are deleted by the commit).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
master=172.30.0.10
remote="ssh://podyard-git@$master/srv/podyard/manifests.git"
ssh_opts=(-i "$repo/.lab/id_ed25519" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
          -o LogLevel=ERROR -o BatchMode=yes)
export GIT_SSH_COMMAND="ssh ${ssh_opts[*]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$work" init -q -b main
if [ -n "$(git -C "$work" ls-remote "$remote" refs/heads/main)" ]; then
  git -C "$work" fetch -q "$remote" main
  # On the tip, with an empty index: the commit holds exactly the files added below.
  git -C "$work" update-ref HEAD FETCH_HEAD
fi
cp "$here"/*.yaml "$work/"
git -C "$work" add -A
git -C "$work" -c user.name=podyard-demo -c user.email=demo@podyard.invalid \
  commit -q --allow-empty -m "Lab example"
git -C "$work" push -q "$remote" main
get_pods=(ssh "${ssh_opts[@]}" "root@$master"
          sudo -u podyard /opt/podyard/venv/bin/podyard --cluster /etc/podyard/cluster.yml get pods)
for _ in $(seq 60); do
  if [ "$("${get_pods[@]}" 2>/dev/null | grep -c ' Running ')" -ge 4 ]; then break; fi
  sleep 1
done
"${get_pods[@]}"
