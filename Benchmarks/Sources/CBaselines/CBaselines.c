#include "CBaselines.h"

#include <string.h>

size_t cb_map_bus_address(const cb_range *in, size_t count, uint64_t bus_offset, cb_segment *out) {
    for (size_t i = 0; i < count; i++) {
        out[i].address = in[i].start + bus_offset;
        out[i].length = in[i].length;
        out[i].is_bus_address = 1;
    }
    return count;
}

uint64_t cb_unmap_walk(const cb_segment *segments, size_t count) {
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (!segments[i].is_bus_address) total += segments[i].length;
    }
    return total;
}

void cb_memcpy(void *dst, const void *src, size_t count) { memcpy(dst, src, count); }

long cb_linear_find(const uint64_t *starts, const uint64_t *lasts, size_t count, uint64_t address) {
    for (size_t i = 0; i < count; i++) {
        if (starts[i] <= address && address <= lasts[i]) return (long)i;
    }
    return -1;
}

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cb_is_number(const char *name) {
    if (!*name) return 0;
    for (; *name; name++) if (*name < '0' || *name > '9') return 0;
    return 1;
}

uint64_t cb_census(const char *proc_root, uint64_t *bytes, uint64_t *mappings) {
    uint64_t seen = 0, total = 0, mapped = 0;
    char path[4096], target[4096], text[4096], line[8192];
    DIR *proc = opendir(proc_root);
    if (!proc) return 0;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        if (!cb_is_number(entry->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s/comm", proc_root, entry->d_name);
        int comm = open(path, O_RDONLY);
        if (comm >= 0) { (void)read(comm, text, sizeof text); close(comm); }
        snprintf(path, sizeof path, "%s/%s/fd", proc_root, entry->d_name);
        DIR *fds = opendir(path);
        if (fds) {
            struct dirent *fd;
            while ((fd = readdir(fds)) != NULL) {
                if (!cb_is_number(fd->d_name)) continue;
                snprintf(path, sizeof path, "%s/%s/fd/%s", proc_root, entry->d_name, fd->d_name);
                ssize_t n = readlink(path, target, sizeof target - 1);
                if (n < 0) continue;
                target[n] = 0;
                if (strncmp(target, "/dmabuf:", 8) != 0 && strcmp(target, "anon_inode:dmabuf") != 0) continue;
                snprintf(path, sizeof path, "%s/%s/fdinfo/%s", proc_root, entry->d_name, fd->d_name);
                int info = open(path, O_RDONLY);
                if (info < 0) continue;
                ssize_t got = read(info, text, sizeof text - 1);
                close(info);
                if (got <= 0) continue;
                text[got] = 0;
                char *size = strstr(text, "\nsize:");
                if (size) total += strtoull(size + 6, NULL, 10);
                seen++;
            }
            closedir(fds);
        }
        snprintf(path, sizeof path, "%s/%s/maps", proc_root, entry->d_name);
        FILE *maps = fopen(path, "r");
        if (maps) {
            while (fgets(line, sizeof line, maps)) if (strstr(line, "/dmabuf:")) mapped++;
            fclose(maps);
        }
    }
    closedir(proc);
    *bytes = total;
    *mappings = mapped;
    return seen;
}
