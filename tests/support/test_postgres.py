"""The throwaway cluster itself: it starts, answers on loopback only, and is gone afterwards."""

from __future__ import annotations

import os
import socket
import subprocess

from tests.support.postgres import PASSWORD, require_bin_dir, throwaway_cluster


def test_postgres_throwaway_cluster_answers_on_loopback_and_is_removed() -> None:
    binaries = require_bin_dir()
    with throwaway_cluster() as cluster:
        answer = subprocess.run(
            [str(binaries / "psql"), cluster.url(), "-tAc", "select current_database(), inet_server_addr()"],
            env={**os.environ, "PGPASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert answer == "slotsync|127.0.0.1"
        port = cluster.port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the cluster must be stopped after the block"
