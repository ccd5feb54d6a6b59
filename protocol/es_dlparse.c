//  es_dlparse - (being written)
