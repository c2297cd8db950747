//! Diesel schema, shared by both backends (the common subset: text, dates, timestamps, integers).

diesel::table! {
    practices (id) {
        id -> Text,
        bsnr -> Text,
        name -> Text,
        street -> Text,
        postal_code -> Text,
        city -> Text,
        phone -> Text,
        created_at -> Timestamp,
        land -> Text,
        outage_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    doctors (id) {
        id -> Text,
        practice_id -> Text,
        lanr -> Text,
        name -> Text,
        specialty -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        practice_id -> Nullable<Text>,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        created_at -> Timestamp,
        deactivated_at -> Nullable<Timestamp>,
        insurer_ik -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_seen_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    login_failures (id) {
        id -> BigInt,
        subject -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    api_tokens (token_hash) {
        token_hash -> Text,
        practice_id -> Text,
        label -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    certificates (id) {
        id -> Text,
        practice_id -> Text,
        submission_key -> Nullable<Text>,
        kind -> Text,
        kvnr -> Text,
        search_name -> Text,
        display_name -> Text,
        insurer_ik -> Text,
        determined_on -> Date,
        incapable_until -> Date,
        document -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        origin -> Text,
        fhir_xml -> Nullable<Text>,
        fhir_sha256 -> Nullable<Text>,
        print_only -> Bool,
        cancelled_at -> Nullable<Timestamp>,
        signed_p7s -> Nullable<Binary>,
        paper_received_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        practice_id -> Text,
        actor -> Text,
        action -> Text,
        certificate_id -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::joinable!(doctors -> practices (practice_id));
diesel::joinable!(users -> practices (practice_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(certificates -> practices (practice_id));
diesel::joinable!(api_tokens -> practices (practice_id));

diesel::allow_tables_to_appear_in_same_query!(
    practices,
    doctors,
    users,
    sessions,
    api_tokens,
    certificates,
    audit_log,
);

diesel::table! {
    deliveries (id) {
        id -> Text,
        certificate_id -> Text,
        practice_id -> Text,
        insurer_ik -> Text,
        document_kind -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        document_id -> Nullable<Text>,
        document -> Nullable<Text>,
        channel -> Text,
        signed_document -> Nullable<Binary>,
    }
}

diesel::table! {
    delivery_attempts (id) {
        id -> BigInt,
        delivery_id -> Text,
        at -> Timestamp,
        outcome -> Text,
        http_status -> Nullable<Integer>,
        detail -> Text,
        duration_ms -> Integer,
    }
}

diesel::joinable!(deliveries -> certificates (certificate_id));
diesel::joinable!(delivery_attempts -> deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(deliveries, delivery_attempts, certificates);

diesel::table! {
    destinations (ik) {
        ik -> Text,
        name -> Text,
        push_url -> Nullable<Text>,
        health_url -> Nullable<Text>,
        auth_header -> Nullable<Text>,
        breaker -> Text,
        consecutive_failures -> Integer,
        probe_at -> Nullable<Timestamp>,
        outage -> Bool,
        outage_since -> Nullable<Timestamp>,
        paused -> Bool,
        last_success_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        updated_at -> Timestamp,
        outage_confirmed_at -> Nullable<Timestamp>,
        rate_per_minute -> Nullable<Integer>,
        kim_address -> Nullable<Text>,
        kim_source -> Nullable<Text>,
    }
}

diesel::table! {
    insurer_tokens (token_hash) {
        token_hash -> Text,
        ik -> Text,
        label -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}
diesel::allow_tables_to_appear_in_same_query!(deliveries, practices);

diesel::table! {
    patient_mails (delivery_id) {
        delivery_id -> Text,
        certificate_id -> Text,
        recipient -> Text,
        employer_copy -> Bool,
        password_policy -> Text,
        password -> Nullable<Text>,
        message_id -> Text,
        consent_by -> Text,
        consent_at -> Timestamp,
        requested_by -> Text,
        created_at -> Timestamp,
    }
}
diesel::joinable!(patient_mails -> deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(patient_mails, deliveries);
diesel::allow_tables_to_appear_in_same_query!(patient_mails, certificates);
diesel::allow_tables_to_appear_in_same_query!(patient_mails, practices);

diesel::table! {
    signatures (document_id) {
        document_id -> Text,
        certificate_id -> Text,
        practice_id -> Text,
        method -> Text,
        signer_subject -> Text,
        signer_serial -> Text,
        signer_issuer -> Text,
        signing_time -> Nullable<Timestamp>,
        p7s_sha256 -> Text,
        signed_by -> Text,
        signed_at -> Timestamp,
    }
}
diesel::allow_tables_to_appear_in_same_query!(signatures, certificates);
diesel::allow_tables_to_appear_in_same_query!(signatures, deliveries);

diesel::table! {
    konnektor_settings (practice_id) {
        practice_id -> Text,
        base_url -> Text,
        mandant_id -> Text,
        client_system_id -> Text,
        workplace_id -> Text,
        user_id -> Nullable<Text>,
        card -> Text,
        iccsn -> Nullable<Text>,
        auth -> Text,
        basic_user -> Nullable<Text>,
        secret_ref -> Nullable<Text>,
        accept_invalid_certs -> Bool,
        smcb_allowed -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    kim_accounts (practice_id) {
        practice_id -> Text,
        address -> Text,
        smtp_host -> Text,
        smtp_port -> Integer,
        pop3_host -> Text,
        pop3_port -> Integer,
        tls -> Text,
        ca_pem -> Nullable<Text>,
        fachdienst_smtp -> Nullable<Text>,
        fachdienst_pop3 -> Nullable<Text>,
        mandant_id -> Text,
        client_system_id -> Text,
        workplace_id -> Text,
        user_id -> Nullable<Text>,
        konnektor_id -> Nullable<Text>,
        secret_ref -> Text,
        poll_minutes -> Integer,
        test_data -> Bool,
        last_poll_at -> Nullable<Timestamp>,
        last_poll_error -> Nullable<Text>,
        poll_requested_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    kim_messages (message_id) {
        message_id -> Text,
        delivery_id -> Text,
        practice_id -> Text,
        recipient -> Text,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        receipt_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    kim_inbox (id) {
        id -> Text,
        practice_id -> Text,
        uidl -> Text,
        received_at -> Timestamp,
        kind -> Text,
        message_id -> Nullable<Text>,
        refers_to -> Nullable<Text>,
        delivery_id -> Nullable<Text>,
        summary -> Text,
        raw -> Binary,
        deleted_at -> Nullable<Timestamp>,
    }
}
diesel::joinable!(kim_messages -> deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(kim_messages, deliveries);
diesel::allow_tables_to_appear_in_same_query!(kim_messages, certificates);
diesel::allow_tables_to_appear_in_same_query!(kim_messages, kim_inbox);
diesel::allow_tables_to_appear_in_same_query!(kim_inbox, deliveries);
diesel::allow_tables_to_appear_in_same_query!(kim_inbox, certificates);
diesel::allow_tables_to_appear_in_same_query!(kim_accounts, deliveries);
diesel::allow_tables_to_appear_in_same_query!(kim_accounts, practices);

diesel::table! {
    scan_uploads (id) {
        id -> Text,
        insurer_ik -> Text,
        uploaded_by -> Text,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        state -> Text,
        files -> Integer,
        pages -> Integer,
        electronic -> Integer,
        paper_only -> Integer,
        ambiguous -> Integer,
        unreadable -> Integer,
        other_insurer -> Integer,
    }
}

diesel::table! {
    scan_pages (upload_id, page_no, barcode_no) {
        upload_id -> Text,
        page_no -> Integer,
        barcode_no -> Integer,
        file_no -> Integer,
        file_page -> Integer,
        outcome -> Text,
        certificate_id -> Nullable<Text>,
        detail -> Text,
    }
}
diesel::joinable!(scan_pages -> scan_uploads (upload_id));
diesel::allow_tables_to_appear_in_same_query!(scan_pages, scan_uploads);
diesel::allow_tables_to_appear_in_same_query!(scan_pages, certificates);
