//go:build tools

// Pins the commands built from this module.
package tools

import (
@IMPORTS@
)
