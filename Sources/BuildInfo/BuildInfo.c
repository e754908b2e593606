// The commit a packaged build was made from, given by Package.swift from the environment at build time.
#include "BuildInfo.h"

#ifndef HCORE_COMMIT
#define HCORE_COMMIT ""
#endif

const char *hcore_build_commit(void) { return HCORE_COMMIT; }
