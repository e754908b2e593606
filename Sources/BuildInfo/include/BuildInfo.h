// What a packaged hcore records about its build: the commit it was built from (scripts/package.sh passes it as
// HCORE_COMMIT in the environment; a build from a checkout records none).
#pragma once

const char *hcore_build_commit(void);
