/* list.h: intrusive circular doubly linked list (embed ld_list in the owner). */
#ifndef LD_CORE_LIST_H
#define LD_CORE_LIST_H

#include <stddef.h>

typedef struct ld_list {
    struct ld_list *prev, *next;
} ld_list;

#define ld_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void ld_list_init(ld_list *l) { l->prev = l->next = l; }
static inline int ld_list_empty(const ld_list *l) { return l->next == l; }
static inline int ld_list_linked(const ld_list *n) { return n->next != NULL && n->next != n; }

static inline void ld_list_append(ld_list *head, ld_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void ld_list_remove(ld_list *n)
{
    if (!n->next) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

#endif
