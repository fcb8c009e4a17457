#!/bin/sh
# Build the compiled core with AddressSanitizer and UndefinedBehaviorSanitizer into DIR,
# beside a copy of the package's Python sources, then run COMMAND with that copy first
# on the path and the sanitizer runtimes preloaded (the interpreter itself is not built
# with them). PYTHONMALLOC=malloc gives every object its own allocation, so a read past
# the end of a bytes buffer lands in a redzone instead of a neighbour in a pymalloc pool.
#
#     tests/fuzz/sanitized.sh DIR PYTHON COMMAND...
set -eu
dir=$1
python=$2
shift 2
asan=$(gcc -print-file-name=libasan.so)
ubsan=$(gcc -print-file-name=libubsan.so)
if [ ! -e "$asan" ] || [ ! -e "$ubsan" ]; then
    echo "gcc has no sanitizer runtimes here; fuzzing the ordinary build" >&2
    exec "$@"
fi
rm -rf "$dir/shardbroker"
mkdir -p "$dir"
# The Python sources, without the ordinary build's extensions.
(cd . && find shardbroker -name '*.py' -o -name '*.pyx' -o -name '*.pxd') |
    while read -r path; do
        mkdir -p "$dir/$(dirname "$path")"
        cp "$path" "$dir/$path"
    done
CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g" \
LDFLAGS="-fsanitize=address,undefined" \
    "$python" setup.py -q build_ext --build-lib "$dir" --build-temp "$dir/build" >/dev/null
export PYTHONPATH="$dir:."
export PYTHONMALLOC=malloc
export LD_PRELOAD="$asan $ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
exec "$@"
