#!/bin/sh
# deltaface for DeepFaceLab (Linux builds): repair the merged frames, then encode the result.
#
# Run after DeepFaceLab's "merge" step, instead of (or before) "merged to mp4":
#     deltaface_dfl.sh [WORKSPACE] [options of 'deltaface dfl fix', e.g. --bridge --edits FILE]
# WORKSPACE defaults to $WORKSPACE, else ./workspace. deltaface runs on its own Python, never
# DeepFaceLab's: set DELTAFACE to its command when 'deltaface' is not on PATH
# (e.g. DELTAFACE="/opt/deltaface/.venv/bin/deltaface").
# Writes data_dst/merged_deltaface/, data_dst/merged_mask_deltaface/ and result_deltaface.mp4;
# DeepFaceLab's own folders and result.mp4 are only read.
set -eu
if [ $# -gt 0 ]; then
    WORKSPACE="$1"
    shift
fi
WORKSPACE="${WORKSPACE:-./workspace}"
DELTAFACE="${DELTAFACE:-deltaface}"
# DELTAFACE may be a command with arguments ("python -m plugin"): split it on purpose.
# shellcheck disable=SC2086
$DELTAFACE dfl fix "$WORKSPACE" --overwrite "$@"
# shellcheck disable=SC2086
$DELTAFACE dfl video "$WORKSPACE" --overwrite
