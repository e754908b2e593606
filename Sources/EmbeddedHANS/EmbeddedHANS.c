// data/hans/*.zst as byte arrays, through C23's #embed (clang ≥ 19; the Swift 6 toolchains ship it): the
// repository keeps one copy of the files, and the compiler reads them when it builds this target.
#include "EmbeddedHANS.h"

#pragma clang diagnostic ignored "-Wc23-extensions"

static const unsigned char train[] = {
#embed "../../data/hans/heuristics_train_set.txt.zst"
};
static const unsigned char evaluation[] = {
#embed "../../data/hans/heuristics_evaluation_set.txt.zst"
};

const unsigned char *hcore_hans_train_zst(size_t *size) { *size = sizeof(train); return train; }
const unsigned char *hcore_hans_evaluation_zst(size_t *size) { *size = sizeof(evaluation); return evaluation; }
