/* settings.h: kernel tunables written at boot (SETTINGS_FILE in the initramfs). */
#ifndef BOSON_SETTINGS_H
#define BOSON_SETTINGS_H

#define SETTINGS_FILE "/boson/settings"

/* Writes each "<path> <value>" line of file (blank lines and # comments skipped) to root + path. Only paths under
 * /sys/ or /proc/sys/ without ".." are written; others are reported and skipped. A missing file is no settings.
 * Returns the number of lines that could not be applied (each reported on stderr). */
int apply_settings(const char *file, const char *root);

#endif
