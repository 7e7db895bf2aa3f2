#!/usr/bin/env bash
# A GPU lease for the paper grid only: scripts/gpu_session.sh with GRIDS=paper (see there).
#
#   scripts/gpu_paper_session.sh SECONDS OUTDIR [WORKERS]
GRIDS=paper exec bash "$(dirname "$0")/gpu_session.sh" "$@"
