// The HANS files `hcore demo` builds its task from, compiled into the binary (EmbeddedHANS.c), so that the
// demo runs from any directory with nothing beside the executable. zstd-compressed, as in data/hans/.
#pragma once
#include <stddef.h>

/// heuristics_train_set.txt.zst: its bytes, and their count in *size.
const unsigned char *hcore_hans_train_zst(size_t *size);
/// heuristics_evaluation_set.txt.zst: its bytes, and their count in *size.
const unsigned char *hcore_hans_evaluation_zst(size_t *size);
