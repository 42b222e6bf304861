/*
 * classifier.c — `darknet classifier train|valid|predict` (placeholder until
 * the data pipeline lands).
 */
#include "darknet.h"
#include <stdio.h>

int run_classifier(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "darknet classifier: not built yet\n");
    return 1;
}
