/* Counts the guest instructions qemu-user executes between two region markers, and among them the int8
 * dot-product (SDOT/UDOT) and matrix-multiply (SMMLA/UMMLA/USMMLA) instructions.
 *
 * The guest marks a region by calling getpid (syscall 172 on aarch64, harmless) with a magic first argument
 * and 1 (start) or 2 (stop) as the second. On stop the plugin prints one line through qemu's log
 * (-d plugin -D FILE):  "ghostnet-region <n> insns=<N> dot=<N> mm=<N>".
 * Counting is inline (added to counters by the translated code itself), so it is exact and repeatable for
 * one guest thread; with several threads the unsynchronised adds could race, so the caller runs one. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARKER_SYSCALL 172 /* getpid on aarch64 */
#define MARKER_MAGIC 0xC0FFEEu

static uint64_t insns, dots, mms;
static uint64_t start_insns, start_dots, start_mms;
static unsigned regions;

static int is_dot(uint32_t op)
{
    /* SDOT/UDOT (vector) and SDOT/UDOT (by element), Armv8.2 DotProd. */
    return (op & 0x9FE0FC00u) == 0x0E809400u || (op & 0x9FC0F400u) == 0x0F80E000u;
}

static int is_mm(uint32_t op)
{
    /* SMMLA/UMMLA/USMMLA, Armv8.6 I8MM. */
    return (op & 0xDFE0F400u) == 0x4E80A400u;
}

static void translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint32_t op;
        if (qemu_plugin_insn_size(insn) != sizeof(op)) {
            continue;
        }
        memcpy(&op, qemu_plugin_insn_data(insn), sizeof(op));
        if (is_dot(op)) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &dots, 1);
        } else if (is_mm(op)) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &mms, 1);
        }
    }
}

static void syscall_entry(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                          uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    char line[160];
    if (num != MARKER_SYSCALL || a1 != MARKER_MAGIC) {
        return;
    }
    if (a2 == 1) {
        start_insns = insns;
        start_dots = dots;
        start_mms = mms;
    } else if (a2 == 2) {
        snprintf(line, sizeof(line), "ghostnet-region %u insns=%" PRIu64 " dot=%" PRIu64 " mm=%" PRIu64 "\n",
                 regions++, insns - start_insns, dots - start_dots, mms - start_mms);
        qemu_plugin_outs(line);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    qemu_plugin_register_vcpu_tb_trans_cb(id, translate);
    qemu_plugin_register_vcpu_syscall_cb(id, syscall_entry);
    return 0;
}
