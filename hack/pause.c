/*
 * The pod sandbox ("pause") process for hack/testenv's private containerd.
 *
 * No registry is reachable here, so we cannot pull registry.k8s.io/pause;
 * this is our own. It runs as PID 1 of the pod's PID namespace, and the
 * kernel delivers no signal to a namespace's PID 1 unless that process has
 * installed a handler for it: without the handlers below, SIGTERM from
 * StopPodSandbox would be ignored and every stop would wait for SIGKILL.
 * As PID 1 it also inherits orphans when pods share a PID namespace, so it
 * must reap them or they stay zombies. It must never exit by itself: the
 * sandbox's namespaces live only as long as this process does.
 *
 * Built with: gcc -static -O2 -o pause pause.c  (static: the image holds
 * nothing but this file).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

static void on_chld(int sig) {
    (void)sig;
    /* Several children may have died behind one SIGCHLD: reap them all. */
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction term = {0}, chld = {0};

    term.sa_handler = on_term;
    sigemptyset(&term.sa_mask);
    chld.sa_handler = on_chld;
    sigemptyset(&chld.sa_mask);
    chld.sa_flags = SA_NOCLDSTOP | SA_RESTART;

    if (sigaction(SIGTERM, &term, NULL) < 0 || sigaction(SIGINT, &term, NULL) < 0 ||
        sigaction(SIGCHLD, &chld, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
