//  es_msg - (being written)
