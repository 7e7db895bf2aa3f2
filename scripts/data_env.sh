# Sourced by scripts/test.sh and scripts/execute_book.sh, before they change directory: a relative
# RESNET_NB_DATA names one file from here and another from book/, where the notebooks run, so it is
# made absolute once, here, or refused when it does not exist.
if [ -n "${RESNET_NB_DATA:-}" ] && [ "$RESNET_NB_DATA" != torchvision ] && [ "$RESNET_NB_DATA" != download ]; then
  case "$RESNET_NB_DATA" in
    /*) ;;
    *) if ! data_dir=$(cd -- "$(dirname -- "$RESNET_NB_DATA")" 2>/dev/null && pwd); then
         echo "RESNET_NB_DATA=$RESNET_NB_DATA: no such folder or zip (from $PWD); set it to an absolute path" >&2
         exit 1
       fi
       RESNET_NB_DATA="$data_dir/$(basename -- "$RESNET_NB_DATA")" ;;
  esac
  export RESNET_NB_DATA
fi
