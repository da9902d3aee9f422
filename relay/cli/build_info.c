/*
 * build_info.c — the versions pgferry runs with. Each library is asked at
 * run time, not at build time: a package upgrade of OpenSSL or libpq
 * changes what runs without rebuilding pgferry, and an operator wants the
 * running version. /metrics carries them as pgferry_build_info{...} 1, the
 * *_build_info convention of Prometheus exporters.
 */
#include "pgferry/build_info.h"

#include "pgferry/version.h"

#include <curl/curl.h>
#include <ev.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

void build_info_libraries(build_info_library_t libs[BUILD_INFO_LIBRARIES])
{
	int pq = PQlibVersion();
	unsigned xxh = XXH_versionNumber();
	int i = 0;

	libs[i].name = "libpq";
	/* major * 10000 + minor since PostgreSQL 10 */
	if (pq >= 100000)
		snprintf(libs[i++].version, sizeof(libs[0].version), "%d.%d", pq / 10000,
		         pq % 10000);
	else
		snprintf(libs[i++].version, sizeof(libs[0].version), "%d.%d.%d", pq / 10000,
		         pq / 100 % 100, pq % 100);
	libs[i].name = "zstd";
	snprintf(libs[i++].version, sizeof(libs[0].version), "%s", ZSTD_versionString());
	libs[i].name = "OpenSSL";
	snprintf(libs[i++].version, sizeof(libs[0].version), "%s",
	         OpenSSL_version(OPENSSL_VERSION_STRING));
	libs[i].name = "libev";
	snprintf(libs[i++].version, sizeof(libs[0].version), "%d.%d", ev_version_major(),
	         ev_version_minor());
	libs[i].name = "libmicrohttpd";
	snprintf(libs[i++].version, sizeof(libs[0].version), "%s", MHD_get_version());
	libs[i].name = "jansson";
	snprintf(libs[i++].version, sizeof(libs[0].version), "%s", jansson_version_str());
	libs[i].name = "libcurl";
	snprintf(libs[i++].version, sizeof(libs[0].version), "%s",
	         curl_version_info(CURLVERSION_NOW)->version);
	libs[i].name = "xxhash";
	snprintf(libs[i].version, sizeof(libs[0].version), "%u.%u.%u", xxh / 10000, xxh / 100 % 100,
	         xxh % 100);
}

void build_info_render_metrics(buf_t *b)
{
	build_info_library_t libs[BUILD_INFO_LIBRARIES];
	char label[32];
	int i, j;

	build_info_libraries(libs);
	buf_printf(b,
	           "# HELP pgferry_build_info pgferry's version and the versions of the "
	           "libraries it runs with; always 1.\n"
	           "# TYPE pgferry_build_info gauge\n"
	           "pgferry_build_info{version=\"%s\"",
	           PGFERRY_VERSION);
	for (i = 0; i < BUILD_INFO_LIBRARIES; i++) {
		/* label names: lower case, [a-z0-9_] (Prometheus' own rule) */
		for (j = 0; j < (int)sizeof(label) - 1 && libs[i].name[j] != '\0'; j++) {
			char c = libs[i].name[j];
			label[j] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
		}
		label[j] = '\0';
		/* versions are digits, dots and letters: nothing to escape */
		buf_printf(b, ",%s=\"%s\"", label, libs[i].version);
	}
	buf_append_str(b, "} 1\n");
}
